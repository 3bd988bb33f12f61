from edgegnn.cli.app import main

main()
