CREATE SCHEMA IF NOT EXISTS orders;
CREATE TABLE orders.shipped (order_id text NOT NULL);
