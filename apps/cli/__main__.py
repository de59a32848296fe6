from apps.cli.main import main

main()
