from knowra_worker.cli import main

main()
