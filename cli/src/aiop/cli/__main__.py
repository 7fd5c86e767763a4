from aiop.cli.main import app

app()
