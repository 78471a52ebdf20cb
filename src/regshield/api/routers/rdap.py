"""Placeholder, filled in by the rdap work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
