"""Call events to the outside: signed JSON webhooks and GA4 through a retrying outbox, and the Google Ads
offline-conversion CSV. Kept import-light: ari_app.config reads sinks from ari_app.outbox.model."""
