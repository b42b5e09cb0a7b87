"""``python -m edgebert ...`` (also what ``accelerate launch -m edgebert finetune ...`` runs)."""

from edgebert.cli import main

if __name__ == "__main__":
    main(prog_name="edgebert")
