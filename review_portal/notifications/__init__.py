"""In-portal notifications and their e-mail copies."""
