from aiop.reporter.main import run

run()
