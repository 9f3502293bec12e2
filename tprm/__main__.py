from tprm.cli import main

main()
