from dimcollapse.cli import main

raise SystemExit(main())
