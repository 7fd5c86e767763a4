from aiop.auth.main import main

main()
