from support.message.endpoints import router as message_router
from support.ticket.endpoints import router as ticket_router

routers = [ticket_router, message_router]
