from aiop.auth.main import run

run()
