"""The seller area (pages arrive with the seller issue)."""
from flask import Blueprint

bp = Blueprint("seller", __name__)
