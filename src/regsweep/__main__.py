from regsweep.cli.main import main

main()
