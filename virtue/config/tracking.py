"""`tracking:` - MLflow."""

from pydantic import Field

from .base import Section


class TrackingConfig(Section):
    enabled: bool = True
    uri: str | None = Field(
        None, description="MLflow tracking URI; default: $MLFLOW_TRACKING_URI, else sqlite:///<workspace>/mlflow.db"
    )
    experiment: str = Field("virtue", description="MLflow experiment name")
