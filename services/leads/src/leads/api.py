from leads.lead.endpoints import operations_router
from leads.lead.endpoints import router as lead_router
from leads.metrics.endpoints import router as metrics_router
from leads.pipeline.endpoints import router as pipeline_router
from leads.stage.endpoints import router as stage_router

# Fixed paths (/leads/stages, /leads/pipeline, /leads/metrics) before /leads/{lead_id}.
routers = [stage_router, pipeline_router, metrics_router, lead_router, operations_router]
