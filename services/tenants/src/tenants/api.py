from tenants.plan.endpoints import router as plan_router
from tenants.tenant.endpoints import router as tenant_router

routers = [tenant_router, plan_router]
