from webhook_dispatcher.delivery.endpoints import router as delivery_router
from webhook_dispatcher.event_type.endpoints import router as event_type_router
from webhook_dispatcher.n8n.endpoints import router as n8n_router
from webhook_dispatcher.n8n.endpoints import settings_router as n8n_settings_router
from webhook_dispatcher.webhook.endpoints import router as endpoint_router

# Fixed paths (/event-types, /deliveries/...) before /{endpoint_id}.
routers = [event_type_router, delivery_router, endpoint_router, n8n_settings_router, n8n_router]
