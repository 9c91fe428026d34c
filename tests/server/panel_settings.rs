//! The admin panel's settings pages, through real HTTPS with forms and CSRF tokens.
