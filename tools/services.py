"""Every AIOP service built as its ``main.build`` builds it, without running it: what they
register is what the bus carries. Settings hold only what building needs."""

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
from aiop.servicekit import Service
from aiop.task_manager.main import TaskManagerSettings
from aiop.task_manager.main import build as task_manager


def all_services() -> list[Service]:
    return [
        gateway(GatewaySettings()),
        auth(AuthSettings()),
        task_manager(TaskManagerSettings(database_url="postgresql://unused")),
        distributor(DistributorSettings()),
        # The local runner: checking for a Dagger engine would look at this machine.
        executor(ExecutorSettings(runner="local")),
        reporter(ReporterSettings()),
    ]
