"""Placeholder, filled in by the contact_form work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
