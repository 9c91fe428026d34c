//! The admin panel's resources pages, through real HTTPS with forms and CSRF tokens.
