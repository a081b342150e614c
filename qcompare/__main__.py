from qcompare.cli.commands import main

raise SystemExit(main())
