from qcompare.cli import main

raise SystemExit(main())
