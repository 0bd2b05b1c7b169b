from specloop.cli import main

main()
