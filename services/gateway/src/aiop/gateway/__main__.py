from aiop.gateway.main import run

run()
