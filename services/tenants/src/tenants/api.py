from tenants.tenant.endpoints import router as tenant_router

routers = [tenant_router]
