"""A throwaway service used by the devstack tests (stands in for a real Plataforma service)."""
