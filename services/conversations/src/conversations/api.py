from fastapi import APIRouter

# Domain modules are added by later issues; the service already starts, migrates and reports health.
routers: list[APIRouter] = []
