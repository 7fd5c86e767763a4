"""Every AIOP service built as its ``main.build`` builds it, without running it: what they
register is what the bus carries, and what each may do on it. ``aiop up`` runs these
services, so it has them installed; they are imported only when asked for."""

from aiop.servicekit import Service

# Service name -> the module ``python -m`` runs it as.
MODULES = {
    "auth": "aiop.auth",
    "task-manager": "aiop.task_manager",
    "distributor": "aiop.distributor",
    "dagger-executor": "aiop.dagger_executor",
    "reporter": "aiop.reporter",
    "gateway": "aiop.gateway",
}


def all_services() -> list[Service]:
    """The six services, wired but not started; settings hold only what wiring needs."""
    from aiop.auth.main import AuthSettings
    from aiop.auth.main import build as auth
    from aiop.dagger_executor.main import ExecutorSettings
    from aiop.dagger_executor.main import build as executor
    from aiop.distributor.main import DistributorSettings
    from aiop.distributor.main import build as distributor
    from aiop.gateway.main import GatewaySettings
    from aiop.gateway.main import build as gateway
    from aiop.reporter.main import ReporterSettings
    from aiop.reporter.main import build as reporter
    from aiop.task_manager.main import TaskManagerSettings
    from aiop.task_manager.main import build as task_manager

    return [
        gateway(GatewaySettings()),
        auth(AuthSettings()),
        task_manager(TaskManagerSettings(database_url="postgresql://unused")),
        distributor(DistributorSettings()),
        # The local runner: checking for a Dagger engine would look at this machine.
        executor(ExecutorSettings(runner="local")),
        reporter(ReporterSettings()),
    ]
