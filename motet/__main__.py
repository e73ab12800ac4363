from motet.cli import main

main()
