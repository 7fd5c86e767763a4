from aiop.gateway.main import main

main()
