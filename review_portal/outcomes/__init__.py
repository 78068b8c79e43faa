"""Asking the referring physician, months after the letter, what happened to the patient."""
