//! The admin panel's users pages, through real HTTPS with forms and CSRF tokens.
