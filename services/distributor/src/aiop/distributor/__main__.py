from aiop.distributor.main import run

run()
