from fpipe.app import run

run()
