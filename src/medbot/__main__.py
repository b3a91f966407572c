from medbot.cli import main

main()
