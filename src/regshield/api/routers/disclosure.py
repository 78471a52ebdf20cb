"""Placeholder, filled in by the disclosure work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
