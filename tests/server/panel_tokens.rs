//! The admin panel's tokens pages, through real HTTPS with forms and CSRF tokens.
