from claw_ledger.cli import main

if __name__ == "__main__":
    main()
