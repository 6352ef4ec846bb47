"""Extensions, created unbound; `create_app` binds them."""
from authlib.integrations.flask_client import OAuth
from flask_htmx import HTMX
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from app.models.base import Model

db = SQLAlchemy(model_class=Model)
migrate = Migrate()
csrf = CSRFProtect()
htmx = HTMX()
oauth = OAuth()
