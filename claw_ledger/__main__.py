from claw_ledger.cli import main

main()
