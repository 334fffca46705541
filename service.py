"""Entry point: `python service.py <command>` is the same CLI as `vigie <command>`."""

from monitor.cli import main

if __name__ == "__main__":
    main()
