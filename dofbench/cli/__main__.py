from dofbench.cli.main import main

main()
