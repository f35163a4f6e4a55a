from billing.plan.endpoints import router as plan_router
from billing.stripe_settings.endpoints import router as stripe_settings_router
from billing.subscription.endpoints import router as subscription_router
from billing.webhook.endpoints import router as webhook_router

routers = [stripe_settings_router, plan_router, subscription_router, webhook_router]
