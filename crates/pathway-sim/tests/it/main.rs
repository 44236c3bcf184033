mod envelopes;
mod personal;
mod sim;
