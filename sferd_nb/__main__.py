"`python -m sferd_nb COMMAND ...`: the `sferd-COMMAND` command (notebook 13_cli); written by hand, as nbdev exports no `__main__`."
from sferd_nb.cli import main

if __name__ == '__main__': main()
