//! One active registration per ID number, without a race.
//!
//! The ID number is never a stream key, so the person's stream cannot enforce
//! that an ID number is registered once. Instead a registration first appends
//! [`RegistrationReserved`](pb::RegistrationReserved) to the stream
//! `idhmac-<hex of id_hmac>` with expected version "no stream": of any number of
//! concurrent registrations of one ID number, exactly one append wins, and the
//! others reload, find the reservation and are rejected. The log keeps only
//! the keyed hash of the ID number here (P1), never the number.
//!
//! A reservation names the person it was made for; reserving again for the
//! same person decides nothing (a retry), for another person is a rejection.
//! The log is append-only, so a reservation is never released: the engine
//! decides the registration in memory before it reserves (see
//! [`crate::Engine::register_person`]), so only a valid registration reserves.

use pathway_domain::{Aggregate, Context, Decision, Event, Rejection, pb};

/// The stream category of reservations.
pub const RESERVATION_CATEGORY: &str = "idhmac";

/// The reservation stream of an ID number's keyed hash: `idhmac-<hex>`.
pub fn reservation_stream(id_hmac: &[u8]) -> String {
    let mut stream = String::with_capacity(RESERVATION_CATEGORY.len() + 1 + 2 * id_hmac.len());
    stream.push_str(RESERVATION_CATEGORY);
    stream.push('-');
    for byte in id_hmac {
        stream.push_str(&format!("{byte:02x}"));
    }
    stream
}

/// Reserve an ID number (by its keyed hash) for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveRegistration {
    pub id_hmac: Vec<u8>,
    pub person_ref: String,
}

/// The state of one reservation stream: the person holding the ID number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reservation {
    holder: Option<String>,
}

impl Reservation {
    /// The person the ID number is registered to, if reserved.
    pub fn holder(&self) -> Option<&str> {
        self.holder.as_deref()
    }
}

impl Aggregate for Reservation {
    type Command = ReserveRegistration;
    const CATEGORY: &'static str = RESERVATION_CATEGORY;

    fn decide(&self, command: &ReserveRegistration, _ctx: &Context<'_>) -> Decision {
        match &self.holder {
            Some(holder) if *holder == command.person_ref => Ok(Vec::new()),
            Some(holder) => Err(Rejection::new(
                "id_number",
                format!("already registered as person {holder}"),
                "one active registration per person",
            )),
            None => Ok(vec![Event::RegistrationReserved(
                pb::RegistrationReserved {
                    id_hmac: command.id_hmac.clone(),
                    person_ref: command.person_ref.clone(),
                },
            )]),
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        // The stream is created with "no stream", so it holds one reservation;
        // should it ever hold more, the first one stands.
        if let Event::RegistrationReserved(e) = event {
            self.holder.get_or_insert_with(|| e.person_ref.clone());
        }
        self
    }
}
