from aiop.dagger_executor.main import run

run()
