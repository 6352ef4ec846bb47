"""The operator area (pages arrive with the operator issue)."""
from flask import Blueprint

bp = Blueprint("operator", __name__)
