from automix.cli import app

app(prog_name="automix")
