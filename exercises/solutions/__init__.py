"""SOLUTIONS to the exercises: one module per exercise, named like the stub it solves. Try the stub first."""
