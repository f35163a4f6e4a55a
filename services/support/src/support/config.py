from common.config import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "support"
