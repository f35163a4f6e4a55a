from conversations.agent.endpoints import router as agent_router
from conversations.channel.endpoints import router as channel_router
from conversations.conversation.endpoints import router as conversation_router
from conversations.webhook.endpoints import PUBLIC_ROUTES
from conversations.webhook.endpoints import router as webhook_router

routers = [channel_router, agent_router, conversation_router, webhook_router]
public_routes = PUBLIC_ROUTES
