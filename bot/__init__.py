"""Kickoff: kick off parallel AI coding agents and keep their pull requests in a review-order queue."""

__version__ = "0.1.0"
