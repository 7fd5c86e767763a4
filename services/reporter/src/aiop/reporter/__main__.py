from aiop.reporter.main import main

main()
